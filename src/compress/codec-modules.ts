import type { CharLSModule } from '@cornerstonejs/codec-charls/wasmjs';
import type { LibJpegTurboModule } from '@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs';
import type { OpenJpegModule } from '@cornerstonejs/codec-openjpeg/decodewasmjs';
import type { OpenJPHModule } from '@cornerstonejs/codec-openjph';

/**
 * The WebAssembly codec modules a conversion may use, loaded by the codec worker. The two
 * decoders only needed for objects received compressed (libjpeg-turbo, OpenJPEG) are optional:
 * the worker loads them for the first object that needs them, so a gateway that never sees a
 * JPEG or JPEG 2000 object never pays for them.
 */
export interface Codecs {
  charls: () => CharLSModule;
  openjph: () => OpenJPHModule;
  /** JPEG Baseline/Extended (8-bit) decoding. */
  libjpeg?: (() => LibJpegTurboModule) | undefined;
  /** JPEG 2000 decoding. */
  openjpeg?: (() => OpenJpegModule) | undefined;
  /** The most a deflated data set may inflate to (compress.maxObjectBytes); beyond it decoding fails. */
  maxInflatedBytes?: number | undefined;
}

export type TranscodeResult =
  | { kind: 'done'; dataset: Buffer; transferSyntaxUid: string; frames: number }
  /** The data set cannot be converted losslessly to that syntax (float pixels, 32-bit, no pixels…): send it another way. */
  | { kind: 'skip'; reason: string }
  /** A decoded frame differed from the original: the encoded form must not be used. */
  | { kind: 'mismatch'; reason: string };
