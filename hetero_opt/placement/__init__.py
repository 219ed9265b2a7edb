"""Where: greedy (paper Algorithm 4), CP-SAT and MILP placement, with one objective and verifier."""
