"""`edgekd pipeline`: recipe -> cached stages -> report."""
