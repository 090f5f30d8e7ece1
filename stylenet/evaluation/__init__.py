"""How good is a model: metrics on images (`metrics`: LPIPS, SSIM, SR's PSNR/SSIM on Y), the
evaluation of a trained style model on held-out photos against its own training loss and Gatys'
optimum (`evaluate`), that of a super-resolution model against bicubic upsampling and other
models (`superres`), and the reports they write (`report`)."""
