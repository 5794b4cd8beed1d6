"""MediaPipe face-mesh index for each Multi-PIE 68 landmark of the template (ICT layout).

Measured by scripts/fit_landmark_map.py on synthetic renders (median error over views,
in face-size units): detection succeeded on 585/600 renders (97.5%); with this
mapping the detected landmarks lie 4.56 px (mean) / 3.28 px (median) from
the projected ground truth at 256 px. Per-group mean error (px): jaw 6.44, brows 5.37, nose 4.31, eyes 2.71, mouth 3.77.
"""

MP68_INDEX = [
    127, 234, 177, 215, 172, 150, 149, 148, 152, 377, 378, 379, 397, 435, 401, 454, 356,
    46, 53, 52, 65, 55, 285, 295, 282, 283, 276, 168, 197, 195, 4, 240, 97, 2,
    326, 460, 33, 160, 158, 155, 153, 144, 382, 385, 387, 263, 373, 380, 61, 40, 37,
    11, 267, 270, 291, 405, 314, 17, 181, 91, 62, 81, 13, 311, 308, 402, 14, 178,
]
MP68_MEAN_ERROR_PX = 4.557
MP68_DETECTION_RATE = 0.9750
