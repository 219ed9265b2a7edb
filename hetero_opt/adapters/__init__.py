"""The outside world: Kubernetes objects in and out, Prometheus over HTTP."""
