"""Protocol adapters: OTLP/gRPC and OTLP/HTTP in front of the pipeline."""
