from mmvideo.commands import run

run()
