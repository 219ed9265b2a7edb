"""Service mode: ``hetero-opt serve`` answers solve and autoscaler-step calls over HTTP."""
