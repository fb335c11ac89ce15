"""llama-cpp-python's OpenAI-compatible server, as the tests and benchmarks run it.

`python tests/peers/llama_cpp_server.py ARGS…` takes the arguments of
`python -m llama_cpp.server`. One difference: llama.cpp's weight repacking ("extra buffer
types") is off unless CAIRN_PEER_REPACK=1. In llama-cpp-python 0.3.36 it segfaults in the
first decode on CPUs with AVX-512/AMX (seen on this project's machines with SmolLM2 Q4_1
and Qwen2.5-Coder Q4_K_M); without it the server answers.
"""

import os
import sys

import llama_cpp.llama_cpp as lib

if os.environ.get("CAIRN_PEER_REPACK") != "1":
    _defaults = lib.llama_model_default_params

    def _no_repack():
        params = _defaults()
        params.use_extra_bufts = False
        return params

    lib.llama_model_default_params = _no_repack

from llama_cpp.server.__main__ import main  # noqa: E402 (after the patch, on purpose)

if __name__ == "__main__":
    sys.argv[0] = "llama_cpp.server"
    main()
