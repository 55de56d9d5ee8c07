"""Small image operations shared by the tasks. Arrays are float32, H x W (x C), values in [0,1].

- :mod:`.pixels` - integer and float scales, channel layout, the sRGB transfer curve, range tests;
- :mod:`.resizing` - resizing (OpenCV, PIL's Lanczos, PyTorch's area mode), block means, cover-and-crop;
- :mod:`.filters` - box mean, Gaussian blur, guided filter;
- :mod:`.compositing` - straight and premultiplied alpha, compositing, shadows, background colours;
- :mod:`.regions` - bounding boxes, tiles near flagged pixels, per-tile work on threads;
- :mod:`.retouch` - automatic photo corrections (denoise, white balance, exposure, local contrast), the ``enhance`` task's.
"""
