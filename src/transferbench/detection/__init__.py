"""Object detection as a transfer task (Vasconcelos et al. 2022, "Proper Reuse of Image Classification Features";
He et al. 2019, "Rethinking ImageNet Pre-training"): the study's backbones in a torchvision Faster R-CNN with FPN,
frozen, fine-tuned or trained from scratch with GroupNorm, scored by VOC 2007 mAP@0.5 and COCO AP."""
