"""Variants of the ViT (RealFormer, width-varying, token merging) and the CNN it is compared with."""
