"""Feed adapters: nursery tasks that turn a source into Quote/Play batches for a Sink."""
