"""Training with Lightning and Hydra: photo folders, the LightningModule, callbacks, loggers and
`train(cfg)`."""
