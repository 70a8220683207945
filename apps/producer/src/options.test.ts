import { channelTriple, modelOption, outputUri } from './options';

describe('outputUri (--output)', () => {
  it('makes a relative directory path a file URI from the current directory', () => {
    expect(outputUri('out', '/home/me/work')).toBe('file:///home/me/work/out');
    expect(outputUri('./data/out dir', '/home/me')).toBe('file:///home/me/data/out%20dir');
    expect(outputUri('../shared', '/home/me')).toBe('file:///home/shared');
  });

  it('leaves URIs, absolute paths and what parseOutputUri refuses with its own message as they are', () => {
    for (const value of ['s3://bucket/prefix', 'file:///abs/dir', '/abs/dir', '~/out', '', ' out', 'ou\u0001t', 'ftp://x']) {
      expect(outputUri(value, '/home/me')).toBe(value);
    }
  });
});

describe('modelOption (--model)', () => {
  it('takes the built-in names and ONNX files by path or URI', () => {
    expect(modelOption('vgg16')).toEqual({ model: 'vgg16' });
    expect(modelOption(' resnet50 ')).toEqual({ model: 'resnet50' });
    expect(modelOption('models/net.onnx')).toEqual({ model: 'onnx', file: 'models/net.onnx' });
    expect(modelOption('https://example.com/m/net.ONNX?X-Amz-Signature=abc')).toEqual({ model: 'onnx', file: 'https://example.com/m/net.ONNX?X-Amz-Signature=abc' });
    expect(modelOption('s3://bucket/net.onnx')).toEqual({ model: 'onnx', file: 's3://bucket/net.onnx' });
  });

  it('refuses anything else, naming what it takes', () => {
    expect(() => modelOption('onnx')).toThrow('give vgg16 or resnet50, or the path or URI of an .onnx file');
    expect(() => modelOption('VGG-16')).toThrow('did you mean vgg16?');
    expect(() => modelOption('net.pth')).toThrow('is not a model');
  });
});

describe('channelTriple (--mean, --std)', () => {
  it('reads three numbers', () => {
    expect(channelTriple('--mean', false)('0.5, 0.5,0.5')).toEqual([0.5, 0.5, 0.5]);
    expect(channelTriple('--mean', false)('-1,0,1e-1')).toEqual([-1, 0, 0.1]);
  });

  it('refuses two numbers, words, and a std that is not positive', () => {
    expect(() => channelTriple('--mean', false)('0.5,0.5')).toThrow('--mean takes three numbers');
    expect(() => channelTriple('--mean', false)('a,b,c')).toThrow('--mean takes three numbers');
    expect(() => channelTriple('--std', true)('0.2,0,0.2')).toThrow('--std takes three positive numbers');
    expect(() => channelTriple('--mean', false)('0.5,,0.5')).toThrow('--mean takes three numbers');
  });
});
