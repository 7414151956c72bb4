"""Weights in and out: torchvision and Google .npz weights, checkpoints, and the trained model that ships."""
