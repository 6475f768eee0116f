"""Prompts that look easy and prompts that look hard (the simulator's difficulty reads such signs)."""

EASY = ["Hi there!", "Hello, how are you?", "Thanks for your help!", "What's the capital of France?", "Say hello in Spanish.",
        "Good morning!", "Tell me a fun fact about cats.", "What colour is the sky?", "Translate 'thank you' to French.",
        "Hey, what's up?"]
HARD = ["Prove that there are infinitely many primes p with p = 4k + 3, rigorously.",
        "Derive the asymptotic complexity of the recurrence T(n) = 3T(n/4) + n log n and prove it by induction.",
        "Design a Byzantine fault tolerant consensus protocol for 7 replicas and prove its safety.",
        "Compute the integral of x^3 * e^(2x) from 0 to 17 step by step.",
        "Find all eigenvalues of the 4x4 matrix [[2,1,0,0],[1,2,1,0],[0,1,2,1],[0,0,1,2]] and prove your answer.",
        "In a distributed key-value store, explain how linearizability differs from sequential consistency under partitions.",
        "A competition problem: how many integers n <= 1000 satisfy n^2 = 1 mod 24? Give a rigorous proof.",
        "Explain how a lock-free queue avoids the ABA problem and prove it is linearizable.",
        "Prove that the halting problem is undecidable and relate it to NP-hard optimisation.",
        "Optimise this compiler pass: dead code elimination over SSA form with 12 basic blocks; prove it terminates."]
