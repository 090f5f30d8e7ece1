"""Running trained models: model files, backends (eager, TorchScript, ONNX Runtime), exports,
tiling, colour post-processing, batch runs over files, and the `Stylizer` API."""
