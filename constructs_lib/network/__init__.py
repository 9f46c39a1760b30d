"""The VPC and the internal NLB in front of the EKS services."""
