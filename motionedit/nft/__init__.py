"""MotionNFT: negative-aware fine-tuning of an editor with the mixed motion + MLLM reward."""
