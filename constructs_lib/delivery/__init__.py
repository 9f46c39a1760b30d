"""Getting code to the stages: pipeline steps and storage, notifications, image registries, GitHub OIDC."""
