"""chat-api: a small HTTP chat-completion service, standard library only."""
