"""The ground floor: what OpenAI-compatible bodies look like, shared by every package.

Texts of messages, prompts and answers (``texts``), token counts (``tokens``), server-sent events
(``sse``), stream chunks (``chunks``) and the hashed text features the router and the moderation
classifier learn from (``features``). Nothing here imports another package of the project.
"""
