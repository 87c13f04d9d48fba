"""Oak: a declarative pipeline that reproduces a comparative study of CNNs on ImageNet."""
