"""Infrastructure stage: the lab as Pulumi resources."""
