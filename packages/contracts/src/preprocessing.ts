// The exact preprocessing of each mode, as data: dataset.json records it for provenance, and the dataset
// side (finalize) writes it without loading the image code (@layertap/imaging implements it with sharp).
/** ImageNet normalisation of torchvision's IMAGENET1K_V1 weights (on the [0, 1] scale, RGB order). */
export const TORCHVISION_MEAN = [0.485, 0.456, 0.406] as const;
export const TORCHVISION_STD = [0.229, 0.224, 0.225] as const;
/** Keras `preprocess_input(mode='caffe')` means, in B, G, R order, on the 0-255 scale. */
export const CAFFE_MEAN_BGR = [103.939, 116.779, 123.68] as const;

/**
 * The exact preprocessing of each mode, for provenance (dataset.json records the entry that was used).
 * Both modes reproduce Pillow: `Image.open(f).convert('RGB')`, then Pillow's antialiased bilinear resize
 * (reimplemented bit for bit in `resizeBilinear`), then float32 maths in the same order as torchvision / Keras.
 * Deliberate differences from Pillow are listed in `decoding`.
 */
export const PREPROCESSING = {
  torchvision: {
    reference: 'torchvision IMAGENET1K_V1: Resize(256) + CenterCrop(224) + ToTensor + Normalize, on a PIL image',
    channelOrder: 'RGB',
    layout: 'HWC',
    resize: {
      rule: 'shorter side to round(imageSize * 256 / 224), longer side int(shorter * long / short)',
      kernel: 'bilinear (Pillow antialiased triangle filter, no shrink-on-load)',
    },
    crop: 'center imageSize x imageSize, offsets round-half-even((size - crop) / 2)',
    scale: 1 / 255,
    mean: TORCHVISION_MEAN,
    std: TORCHVISION_STD,
    formula: 'float32: ((v / 255) - mean[c]) / std[c]',
  },
  'torchvision-v2': {
    reference: 'torchvision IMAGENET1K_V2 (e.g. ResNet-50 V2): Resize(232) + CenterCrop(224) + ToTensor + Normalize, on a PIL image',
    channelOrder: 'RGB',
    layout: 'HWC',
    resize: {
      rule: 'shorter side to round(imageSize * 232 / 224), longer side int(shorter * long / short)',
      kernel: 'bilinear (Pillow antialiased triangle filter, no shrink-on-load)',
    },
    crop: 'center imageSize x imageSize, offsets round-half-even((size - crop) / 2)',
    scale: 1 / 255,
    mean: TORCHVISION_MEAN,
    std: TORCHVISION_STD,
    formula: 'float32: ((v / 255) - mean[c]) / std[c]',
  },
  caffe: {
    reference: 'Keras VGG16 preprocess_input (mode "caffe") after resizing to imageSize x imageSize',
    channelOrder: 'BGR',
    layout: 'HWC',
    resize: {
      rule: 'both sides to imageSize (aspect ratio not kept)',
      kernel: 'bilinear (Pillow antialiased triangle filter, no shrink-on-load)',
    },
    crop: 'none',
    scale: 1,
    mean: CAFFE_MEAN_BGR,
    std: null,
    formula: 'float32: v - mean[c], channels in B, G, R order',
  },
  decoding: {
    library: 'sharp (libvips)',
    colour: 'to 8-bit sRGB like Pillow convert("RGB"): alpha dropped (not blended), grey replicated, palette ' +
      'expanded, 16-bit reduced to the high byte; embedded ICC profiles ignored (as Pillow does)',
    differencesFromPillow: [
      'EXIF orientation is applied (Pillow and torchvision ignore it)',
      'CMYK is converted through an ICC transform (Pillow uses a naive formula)',
      '16-bit grayscale keeps the high byte (Pillow clips values above 255 to white)',
    ],
    animated: 'first frame only',
    failOn: 'warning: truncated or corrupt data fails the sample instead of half-decoding',
  },
} as const;
