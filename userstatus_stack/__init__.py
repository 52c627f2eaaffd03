"""The CDK stack of the photonranch user status relay and the constructs it is made of."""
