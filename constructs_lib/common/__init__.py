"""What every tier shares: cdk-nag acknowledgements, per-environment policies, Lambda bundling, SSM parameters, Pod Identity, cross-stack references."""
