// The cornerstone codec packages ship no .d.ts: minimal ambient declarations.
declare module '@cornerstonejs/codec-charls/wasmjs' {
  export interface FrameInfo { width: number; height: number; bitsPerSample: number; componentCount: number }
  export interface JpegLSEncoder { getDecodedBuffer(fi: FrameInfo): Uint8Array; getEncodedBuffer(): Uint8ClampedArray; setNearLossless(n: number): void; setInterleaveMode(m: 0 | 1 | 2): void; encode(): void; delete(): void }
  export interface JpegLSDecoder { getEncodedBuffer(len: number): Uint8Array; getDecodedBuffer(): Uint8Array; decode(): void; getFrameInfo(): FrameInfo; getInterleaveMode(): number; getNearLossless(): number; delete(): void }
  export interface CharLSModule { JpegLSEncoder: new () => JpegLSEncoder; JpegLSDecoder: new () => JpegLSDecoder; getVersion(): string; HEAPU8: Uint8Array }
  const factory: (opts?: Record<string, unknown>) => Promise<CharLSModule>;
  export default factory;
}
declare module '@cornerstonejs/codec-openjph' {
  export interface FrameInfo { width: number; height: number; bitsPerSample: number; componentCount: number; isSigned: boolean; isUsingColorTransform: boolean }
  export interface HTJ2KEncoder { getDecodedBuffer(fi: FrameInfo): Uint8Array; getEncodedBuffer(): Uint8Array; setQuality(lossless: boolean, quantizationStep: number): void; setDecompositions(n: number): void; setProgressionOrder(n: number): void; setBlockDimensions(s: { width: number; height: number }): void; setTLMMarker(b: boolean): void; encode(): void; delete(): void }
  export interface HTJ2KDecoder { getEncodedBuffer(len: number): Uint8Array; getDecodedBuffer(): Uint8Array; readHeader(): void; decode(): void; decodeSubResolution(level: number): void; getFrameInfo(): FrameInfo; getIsReversible(): boolean; getNumDecompositions(): number; delete(): void }
  export interface OpenJPHModule { HTJ2KEncoder: new () => HTJ2KEncoder; HTJ2KDecoder: new () => HTJ2KDecoder; getVersion(): string; getSIMDLevel(): number; HEAPU8: Uint8Array }
  const factory: (opts?: { print?: (s: string) => void; printErr?: (s: string) => void }) => Promise<OpenJPHModule>;
  export default factory;
}
declare module '@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs' {
  export interface FrameInfo { width: number; height: number; bitsPerSample: number; componentCount: number; isSigned: boolean }
  export interface JPEGDecoder { getEncodedBuffer(len: number): Uint8Array; getDecodedBuffer(): Uint8Array; readHeader(): void; decode(): void; getFrameInfo(): FrameInfo; delete(): void }
  export interface LibJpegTurboModule { JPEGDecoder: new () => JPEGDecoder; HEAPU8: Uint8Array }
  const factory: (opts?: { print?: (s: string) => void; printErr?: (s: string) => void }) => Promise<LibJpegTurboModule>;
  export default factory;
}
declare module '@cornerstonejs/codec-openjpeg/decodewasmjs' {
  export interface FrameInfo { width: number; height: number; bitsPerSample: number; componentCount: number; isSigned: boolean }
  export interface J2KDecoder { getEncodedBuffer(len: number): Uint8Array; getDecodedBuffer(): Uint8Array; readHeader(): void; decode(): void; getFrameInfo(): FrameInfo; getIsReversible(): boolean; getNumDecompositions(): number; getColorSpace(): number; delete(): void }
  export interface OpenJpegModule { J2KDecoder: new () => J2KDecoder; HEAPU8: Uint8Array }
  const factory: (opts?: { print?: (s: string) => void; printErr?: (s: string) => void }) => Promise<OpenJpegModule>;
  export default factory;
}
declare module 'jpeg-lossless-decoder-js' {
  export class Decoder {
    constructor(buffer?: ArrayBuffer, numBytes?: number);
    /** Decodes a JPEG lossless (process 14) stream; samples as an array of `numBytes`-byte integers, colour interleaved. */
    decode(buffer: ArrayBuffer, offset: number, length: number, numBytes: number): Uint8Array | Uint16Array;
  }
}
