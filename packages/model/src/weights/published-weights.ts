// The pretrained VGG16 weights layertap knows by name: where they are published and how each is checked.
// One table: the CLI's `--weights` names, `weights fetch`, the cache and the README all read it.
import type { Preprocess } from '@layertap/contracts';

/**
 * What a download must match. Keras checks its files by MD5 (keras-applications' `file_hash`); torchvision
 * by the first 8 hex digits of the sha256 that its file names carry (torch.hub's `check_hash`). A mirror's
 * own checksums (`LAYERTAP_WEIGHTS_MIRROR_CHECKSUMS`) may also give a full sha256.
 */
export interface WeightsChecksum {
  size?: number;
  md5?: string;
  sha256?: string;
  sha256Prefix?: string;
}

export interface PublishedWeights {
  /** One line for people: what the weights are. */
  title: string;
  /** Where the file is published (a mirror keeps the path and replaces the scheme and host). */
  url: string;
  /** The published file name. */
  file: string;
  checksum: WeightsChecksum;
  /** The preprocessing the weights were trained with (what `submit` uses without `--preprocess`). */
  trainedWith: Preprocess;
  /** Whether fc1, fc2 and predictions are there. */
  classifierHead: boolean;
}

export const PUBLISHED_WEIGHTS = {
  'keras-imagenet': {
    title: "Keras applications VGG16, ImageNet (the original VGG/Caffe training), with the classifier head",
    url: 'https://storage.googleapis.com/tensorflow/keras-applications/vgg16/vgg16_weights_tf_dim_ordering_tf_kernels.h5',
    file: 'vgg16_weights_tf_dim_ordering_tf_kernels.h5',
    checksum: { size: 553_467_096, md5: '64373286793e3c8b2b4e3219cbf3544b' },
    trainedWith: 'caffe',
    classifierHead: true,
  },
  'keras-imagenet-notop': {
    title: 'Keras applications VGG16, ImageNet, convolutional layers only (no fc1, fc2, predictions)',
    url: 'https://storage.googleapis.com/tensorflow/keras-applications/vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5',
    file: 'vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5',
    checksum: { size: 58_889_256, md5: '6d6bbae143d832006294945121d1f1fc' },
    trainedWith: 'caffe',
    classifierHead: false,
  },
  'torchvision-imagenet': {
    title: 'torchvision VGG16_Weights.IMAGENET1K_V1 (a PyTorch training), with the classifier head',
    url: 'https://download.pytorch.org/models/vgg16-397923af.pth',
    file: 'vgg16-397923af.pth',
    checksum: { sha256Prefix: '397923af' },
    trainedWith: 'torchvision',
    classifierHead: true,
  },
} as const satisfies Record<string, PublishedWeights>;

export type PublishedWeightsName = keyof typeof PUBLISHED_WEIGHTS;

/** Names `layertap weights fetch` took before the torchvision weights had a name; still accepted. */
export const PUBLISHED_WEIGHTS_ALIASES: Readonly<Record<string, PublishedWeightsName>> = {
  'keras-vgg16': 'keras-imagenet',
  'keras-vgg16-notop': 'keras-imagenet-notop',
};

export const PUBLISHED_WEIGHTS_NAMES = Object.keys(PUBLISHED_WEIGHTS) as PublishedWeightsName[];

/** The published weights `value` names (aliases included), or undefined for anything else (a path, a URI). */
export function publishedWeightsName(value: string): PublishedWeightsName | undefined {
  const name = value.trim();
  if (Object.prototype.hasOwnProperty.call(PUBLISHED_WEIGHTS, name)) return name as PublishedWeightsName;
  return Object.prototype.hasOwnProperty.call(PUBLISHED_WEIGHTS_ALIASES, name) ? PUBLISHED_WEIGHTS_ALIASES[name] : undefined;
}

export function isPublishedWeightsName(value: string): value is PublishedWeightsName {
  return Object.prototype.hasOwnProperty.call(PUBLISHED_WEIGHTS, value);
}

/**
 * Where to download `name` from: its published URL, or the same path under `mirror` (a base URL such as
 * `https://mirror.example.com/weights`, giving `.../weights/models/vgg16-397923af.pth`).
 */
export function publishedUrl(name: PublishedWeightsName, mirror?: string): string {
  const published = new URL(PUBLISHED_WEIGHTS[name].url);
  if (!mirror) return published.toString();
  return `${mirror.replace(/\/+$/, '')}${published.pathname}`;
}

/** A checksum in words: `553,467,096 bytes, MD5 6437...` or `sha256 starting 397923af`. */
export function describeChecksum(checksum: WeightsChecksum): string {
  const parts: string[] = [];
  if (checksum.size !== undefined) parts.push(`${checksum.size.toLocaleString('en-US')} bytes`);
  if (checksum.md5) parts.push(`MD5 ${checksum.md5}`);
  if (checksum.sha256) parts.push(`sha256 ${checksum.sha256}`);
  else if (checksum.sha256Prefix) parts.push(`sha256 starting ${checksum.sha256Prefix}`);
  return parts.join(', ');
}

/** What is wrong with a download of `size` bytes and these digests, or undefined when it matches. */
export function checksumProblem(checksum: WeightsChecksum, size: number, digests: { md5: string; sha256: string }): string | undefined {
  const wrong: string[] = [];
  if (checksum.size !== undefined && size !== checksum.size) wrong.push(`${size.toLocaleString('en-US')} bytes (${size < checksum.size ? 'truncated' : 'too long'})`);
  if (checksum.md5 && digests.md5 !== checksum.md5.toLowerCase()) wrong.push(`MD5 ${digests.md5}`);
  if (checksum.sha256 && digests.sha256 !== checksum.sha256.toLowerCase()) wrong.push(`sha256 ${digests.sha256}`);
  if (checksum.sha256Prefix && !digests.sha256.startsWith(checksum.sha256Prefix.toLowerCase())) wrong.push(`sha256 ${digests.sha256}`);
  if (wrong.length === 0) return undefined;
  return `got ${[...new Set(wrong)].join(', ')}; expected ${describeChecksum(checksum)}`;
}

/** A cache key for `name` as checked by `checksum`: a copy checked against other checksums is another entry. */
export function publishedCacheKey(name: PublishedWeightsName, checksum: WeightsChecksum): string {
  const parts = [checksum.size ?? '', checksum.md5 ?? '', checksum.sha256 ?? '', checksum.sha256Prefix ?? ''].map(String);
  return `layertap-published:${name}:${parts.join(':')}`;
}
