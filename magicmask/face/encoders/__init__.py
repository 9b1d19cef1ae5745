"""Identity-encoder backends; the public entry point is ``magicmask.face.identity``."""
