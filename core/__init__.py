"""labdeck."""
