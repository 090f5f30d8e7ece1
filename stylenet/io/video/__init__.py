"""Video files with PyAV (FFmpeg), streaming; one module per job:

- `transcode`: `transcode_video` decodes a video, maps its frames in batches and encodes the
  result with the input's size, rate and timestamps (stylization is one such map);
  `transcode_videos` writes several maps of one decode (every style of a multi-style model);
  `read_frames` just decodes;
- `codecs`: which container, encoder, pixel format and quality an output gets;
- `timing`: the time-base arithmetic that keeps frame timing exact;
- `audio`: the audio stream copied, re-encoded or dropped.

How much a stylized video flickers is measured in the evaluation layer
(`stylenet.evaluation.temporal`), not here.
"""

from stylenet.io.video.codecs import VIDEO_EXTENSIONS, is_video, output_codecs
from stylenet.io.video.transcode import (
    VideoReadError,
    VideoReport,
    read_frames,
    transcode_video,
    transcode_videos,
)

__all__ = [
    "VIDEO_EXTENSIONS",
    "VideoReadError",
    "VideoReport",
    "is_video",
    "output_codecs",
    "read_frames",
    "transcode_video",
    "transcode_videos",
]
