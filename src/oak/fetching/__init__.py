"""Getting what Oak reads from elsewhere: the released weights of the published profile (`oak weights pull`)."""
