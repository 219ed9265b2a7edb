"""What-if: a closed-loop serving simulator (roofline performance model, request and fluid modes)."""
