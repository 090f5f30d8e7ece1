"""Files, images, videos and sample inputs: atomic writes, decoding any photo to RGB, streaming
video; no model code."""
