"""Labels from a latent GAN (HandsOff / DatasetGAN): the inversion encoder (encoder.py) and the pixel label head
on the generator's hypercolumns (head.py); the GAN itself is `generators.stylegan`, trained by
`generators.latent`."""
