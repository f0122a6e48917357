"""Generated gateway.v1 API code (do not edit; `make proto` regenerates it)."""
