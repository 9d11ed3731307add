"""JPEG internals behind :func:`service.imaging.decode.decode_rgb`: marker parsing, multi-threaded
strips for files with restart markers, and progressive files without the scans 1/8 scale skips."""
