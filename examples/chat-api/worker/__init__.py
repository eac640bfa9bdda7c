"""chat-api worker: takes chat jobs from a queue and completes them with the model."""
