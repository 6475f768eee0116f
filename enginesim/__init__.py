"""A simulated LLM engine that speaks vLLM's OpenAI API and Prometheus metrics.

Tests and demos run it where a GPU engine (vLLM, SGLang, TGI, llama.cpp) would run in
production; the gateway reaches both the same way, over real HTTP.
"""
