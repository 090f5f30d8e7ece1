"""How good is a model: metrics on images (`metrics`: LPIPS, SSIM) and the evaluation of a
trained model on held-out photos against its own training loss and Gatys' optimum (`evaluate`),
with the report it writes."""
