"""MotionNFT: negative-aware fine-tuning of an editor with the mixed motion + MLLM reward.

What lives here: ``objective.py`` (the arithmetic: optimality rewards, group filter, NFT
loss, old-policy decay), ``trainer.py`` (the loop over the editor adapter interface),
``launch.py`` and ``__main__.py`` (several processes through accelerate). What MotionNFT
shares with SFT (pairs, samplers, checkpoints, random state) is in motionedit/training.py;
the rewards are in motionedit/rewards/.
"""
