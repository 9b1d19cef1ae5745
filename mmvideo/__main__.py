from mmvideo.cli import run

run()
