"""The slow reference: optimizing the image itself (Gatys et al.), and how close a trained model
comes to that optimum."""
