"""The training loop (checkpoint every epoch, exact resume), batching and classification metrics."""
