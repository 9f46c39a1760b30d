"""EKS: the control plane, node groups, add-ons (one module each), and what the workloads may reach."""
