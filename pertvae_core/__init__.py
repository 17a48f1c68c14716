"""pertvae_core package."""
