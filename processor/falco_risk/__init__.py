"""falco-risk: tag Falco alerts with ATT&CK and risk attributes inside an OTLP pipeline."""

__version__ = "0.1.0"
