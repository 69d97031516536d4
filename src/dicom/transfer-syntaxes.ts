/**
 * DICOM Transfer Syntaxes: UIDs, names, and how each one encodes the Data Set and the Pixel Data.
 *
 * Covers every Transfer Syntax in PS3.6 Table A-1 that encodes a Data Set, current or retired:
 * the native syntaxes, the JPEG family (including the retired processes), JPEG-LS, JPEG 2000,
 * JPIP, MPEG-2, MPEG-4 AVC, HEVC, JPEG XL, HTJ2K, RLE, the SMPTE ST 2110 (DICOM-RTV) syntaxes,
 * Deflated Image Frame Compression, and the retired Papyrus 3 syntax.
 *
 * Left out on purpose: the retired pseudo transfer syntaxes "RFC 2557 MIME encapsulation"
 * (1.2.840.10008.1.2.6.1) and "XML Encoding" (1.2.840.10008.1.2.6.2). They only labelled
 * HL7 CDA documents referenced from a DICOMDIR and never encoded a DICOM Data Set.
 *
 * @see PS3.5 §10 (Transfer Syntax) and Annex A (Transfer Syntax Specifications)
 * @see PS3.6 Annex A (Table A-1, UID Values)
 */

/**
 * How a Transfer Syntax encodes a Data Set.
 *
 * - `explicitVr`: each Data Element carries its VR. @see PS3.5 §7.1.2
 * - `littleEndian`: byte order of the Data Set. @see PS3.5 §7.3
 * - `deflated`: the whole Data Set after the File Meta Information is Deflate-compressed
 *   (RFC 1951). @see PS3.5 Annex A.5, A.7, A.12
 * - `encapsulated`: Pixel Data (7FE0,0010) uses the Encapsulated Format (a sequence of
 *   Fragments). @see PS3.5 §8.2, Annex A.4
 */
export type Encoding = {
  readonly explicitVr: boolean;
  readonly littleEndian: boolean;
  readonly deflated: boolean;
  readonly encapsulated: boolean;
};

/**
 * One Transfer Syntax.
 *
 * `lossless` describes the pixel data, not the Data Set encoding:
 * - `true`: only lossless (bit-preserving) coding is allowed. This includes all uncompressed
 *   syntaxes.
 * - `false`: the coding is lossy.
 * - `'both'`: the syntax allows lossless and lossy coding (e.g. JPEG 2000 .91, HTJ2K .203).
 *
 * @see PS3.5 §10, PS3.6 Table A-1
 */
export interface TransferSyntaxInfo {
  /** Transfer Syntax UID, @see PS3.6 Table A-1 */
  readonly uid: string;
  /** Name as registered in PS3.6 Table A-1; retired entries keep the "(Retired)" suffix */
  readonly name: string;
  /** True when PS3.6 lists the UID as retired */
  readonly retired: boolean;
  /** Explicit VR encoding, @see PS3.5 §7.1.2 */
  readonly explicitVr: boolean;
  /** Little endian byte order, @see PS3.5 §7.3 */
  readonly littleEndian: boolean;
  /** Entire Data Set Deflate-compressed, @see PS3.5 Annex A.5 / A.7 / A.12 */
  readonly deflated: boolean;
  /** Pixel Data in Encapsulated Format (Fragments), @see PS3.5 §8.2 and Annex A.4 */
  readonly encapsulated: boolean;
  /** Lossless-only (`true`), lossy (`false`) or either (`'both'`) pixel data coding */
  readonly lossless: boolean | 'both';
}

/**
 * Transfer Syntax UIDs by PascalCase keyword (mostly the PS3.6 keyword).
 *
 * Note: in this project `JPEGLossless` is the default lossless JPEG syntax,
 * 1.2.840.10008.1.2.4.70 (Process 14, Selection Value 1). PS3.6 uses the keyword
 * `JPEGLossless` for 1.2.840.10008.1.2.4.57 and `JPEGLosslessSV1` for .70. Here .57 is
 * {@link TS.JPEGLosslessProcess14}.
 *
 * @see PS3.5 §10, PS3.6 Table A-1
 */
export const TS = {
  ImplicitVRLittleEndian: '1.2.840.10008.1.2',
  ExplicitVRLittleEndian: '1.2.840.10008.1.2.1',
  EncapsulatedUncompressedExplicitVRLittleEndian: '1.2.840.10008.1.2.1.98',
  DeflatedExplicitVRLittleEndian: '1.2.840.10008.1.2.1.99',
  ExplicitVRBigEndian: '1.2.840.10008.1.2.2',
  JPEGBaseline8Bit: '1.2.840.10008.1.2.4.50',
  JPEGExtended12Bit: '1.2.840.10008.1.2.4.51',
  JPEGExtended35: '1.2.840.10008.1.2.4.52',
  JPEGSpectralSelectionNonHierarchical68: '1.2.840.10008.1.2.4.53',
  JPEGSpectralSelectionNonHierarchical79: '1.2.840.10008.1.2.4.54',
  JPEGFullProgressionNonHierarchical1012: '1.2.840.10008.1.2.4.55',
  JPEGFullProgressionNonHierarchical1113: '1.2.840.10008.1.2.4.56',
  JPEGLosslessProcess14: '1.2.840.10008.1.2.4.57',
  JPEGLosslessNonHierarchical15: '1.2.840.10008.1.2.4.58',
  JPEGExtendedHierarchical1618: '1.2.840.10008.1.2.4.59',
  JPEGExtendedHierarchical1719: '1.2.840.10008.1.2.4.60',
  JPEGSpectralSelectionHierarchical2022: '1.2.840.10008.1.2.4.61',
  JPEGSpectralSelectionHierarchical2123: '1.2.840.10008.1.2.4.62',
  JPEGFullProgressionHierarchical2426: '1.2.840.10008.1.2.4.63',
  JPEGFullProgressionHierarchical2527: '1.2.840.10008.1.2.4.64',
  JPEGLosslessHierarchical28: '1.2.840.10008.1.2.4.65',
  JPEGLosslessHierarchical29: '1.2.840.10008.1.2.4.66',
  JPEGLossless: '1.2.840.10008.1.2.4.70',
  JPEGLSLossless: '1.2.840.10008.1.2.4.80',
  JPEGLSNearLossless: '1.2.840.10008.1.2.4.81',
  JPEG2000Lossless: '1.2.840.10008.1.2.4.90',
  JPEG2000: '1.2.840.10008.1.2.4.91',
  JPEG2000MCLossless: '1.2.840.10008.1.2.4.92',
  JPEG2000MC: '1.2.840.10008.1.2.4.93',
  JPIPReferenced: '1.2.840.10008.1.2.4.94',
  JPIPReferencedDeflate: '1.2.840.10008.1.2.4.95',
  MPEG2MPML: '1.2.840.10008.1.2.4.100',
  MPEG2MPMLF: '1.2.840.10008.1.2.4.100.1',
  MPEG2MPHL: '1.2.840.10008.1.2.4.101',
  MPEG2MPHLF: '1.2.840.10008.1.2.4.101.1',
  MPEG4HP41: '1.2.840.10008.1.2.4.102',
  MPEG4HP41F: '1.2.840.10008.1.2.4.102.1',
  MPEG4HP41BD: '1.2.840.10008.1.2.4.103',
  MPEG4HP41BDF: '1.2.840.10008.1.2.4.103.1',
  MPEG4HP422D: '1.2.840.10008.1.2.4.104',
  MPEG4HP422DF: '1.2.840.10008.1.2.4.104.1',
  MPEG4HP423D: '1.2.840.10008.1.2.4.105',
  MPEG4HP423DF: '1.2.840.10008.1.2.4.105.1',
  MPEG4HP42STEREO: '1.2.840.10008.1.2.4.106',
  MPEG4HP42STEREOF: '1.2.840.10008.1.2.4.106.1',
  HEVCMP51: '1.2.840.10008.1.2.4.107',
  HEVCM10P51: '1.2.840.10008.1.2.4.108',
  JPEGXLLossless: '1.2.840.10008.1.2.4.110',
  JPEGXLJPEGRecompression: '1.2.840.10008.1.2.4.111',
  JPEGXL: '1.2.840.10008.1.2.4.112',
  HTJ2KLossless: '1.2.840.10008.1.2.4.201',
  HTJ2KLosslessRPCL: '1.2.840.10008.1.2.4.202',
  HTJ2K: '1.2.840.10008.1.2.4.203',
  JPIPHTJ2KReferenced: '1.2.840.10008.1.2.4.204',
  JPIPHTJ2KReferencedDeflate: '1.2.840.10008.1.2.4.205',
  RLELossless: '1.2.840.10008.1.2.5',
  SMPTEST211020UncompressedProgressiveActiveVideo: '1.2.840.10008.1.2.7.1',
  SMPTEST211020UncompressedInterlacedActiveVideo: '1.2.840.10008.1.2.7.2',
  SMPTEST211030PCMDigitalAudio: '1.2.840.10008.1.2.7.3',
  DeflatedImageFrameCompression: '1.2.840.10008.1.2.8.1',
  Papyrus3ImplicitVRLittleEndian: '1.2.840.10008.1.20',
} as const;

/** Any Transfer Syntax UID listed in {@link TS}. */
export type TransferSyntaxUid = (typeof TS)[keyof typeof TS];

/** Explicit VR Little Endian Data Set with Pixel Data in Encapsulated Format. @see PS3.5 §8.2, Annex A.4 */
function encapsulated(uid: TransferSyntaxUid, name: string, lossless: boolean | 'both', retired = false): TransferSyntaxInfo {
  return { uid, name, retired, explicitVr: true, littleEndian: true, deflated: false, encapsulated: true, lossless };
}

/**
 * Explicit VR Little Endian Data Set with no encapsulated Pixel Data. Used for the JPIP syntaxes
 * (pixel data comes from a Pixel Data Provider URL, PS3.5 §8.4) and the SMPTE ST 2110 syntaxes
 * (pixels or audio travel in a separate DICOM-RTV flow, PS3.5 Annex A.8 ff., PS3.22).
 */
function referenced(uid: TransferSyntaxUid, name: string, lossless: boolean | 'both', deflated: boolean): TransferSyntaxInfo {
  return { uid, name, retired: false, explicitVr: true, littleEndian: true, deflated, encapsulated: false, lossless };
}

/**
 * All Transfer Syntaxes the gateway knows, in UID order.
 *
 * @see PS3.5 §10 and Annex A, PS3.6 Table A-1
 */
export const TRANSFER_SYNTAXES: readonly TransferSyntaxInfo[] = [
  // ---- Native (uncompressed) encodings: PS3.5 Annex A.1-A.3, A.5 -------------------------------
  /** Default Transfer Syntax for DICOM. @see PS3.5 §10.1, Annex A.1 */
  { uid: TS.ImplicitVRLittleEndian, name: 'Implicit VR Little Endian', retired: false, explicitVr: false, littleEndian: true, deflated: false, encapsulated: false, lossless: true },
  /** @see PS3.5 Annex A.2 */
  { uid: TS.ExplicitVRLittleEndian, name: 'Explicit VR Little Endian', retired: false, explicitVr: true, littleEndian: true, deflated: false, encapsulated: false, lossless: true },
  /** Uncompressed frames, one per Fragment. @see PS3.5 Annex A.4 */
  encapsulated(TS.EncapsulatedUncompressedExplicitVRLittleEndian, 'Encapsulated Uncompressed Explicit VR Little Endian', true),
  /** Entire Data Set deflated. @see PS3.5 Annex A.5 */
  { uid: TS.DeflatedExplicitVRLittleEndian, name: 'Deflated Explicit VR Little Endian', retired: false, explicitVr: true, littleEndian: true, deflated: true, encapsulated: false, lossless: true },
  /** @see PS3.5 Annex A.3 */
  { uid: TS.ExplicitVRBigEndian, name: 'Explicit VR Big Endian (Retired)', retired: true, explicitVr: true, littleEndian: false, deflated: false, encapsulated: false, lossless: true },

  // ---- JPEG (ISO/IEC 10918-1): PS3.5 §8.2.1, §10.2, Annex A.4 ---------------------------------
  encapsulated(TS.JPEGBaseline8Bit, 'JPEG Baseline (Process 1)', false),
  encapsulated(TS.JPEGExtended12Bit, 'JPEG Extended (Process 2 & 4)', false),
  encapsulated(TS.JPEGExtended35, 'JPEG Extended (Process 3 & 5) (Retired)', false, true),
  encapsulated(TS.JPEGSpectralSelectionNonHierarchical68, 'JPEG Spectral Selection, Non-Hierarchical (Process 6 & 8) (Retired)', false, true),
  encapsulated(TS.JPEGSpectralSelectionNonHierarchical79, 'JPEG Spectral Selection, Non-Hierarchical (Process 7 & 9) (Retired)', false, true),
  encapsulated(TS.JPEGFullProgressionNonHierarchical1012, 'JPEG Full Progression, Non-Hierarchical (Process 10 & 12) (Retired)', false, true),
  encapsulated(TS.JPEGFullProgressionNonHierarchical1113, 'JPEG Full Progression, Non-Hierarchical (Process 11 & 13) (Retired)', false, true),
  encapsulated(TS.JPEGLosslessProcess14, 'JPEG Lossless, Non-Hierarchical (Process 14)', true),
  encapsulated(TS.JPEGLosslessNonHierarchical15, 'JPEG Lossless, Non-Hierarchical (Process 15) (Retired)', true, true),
  encapsulated(TS.JPEGExtendedHierarchical1618, 'JPEG Extended, Hierarchical (Process 16 & 18) (Retired)', false, true),
  encapsulated(TS.JPEGExtendedHierarchical1719, 'JPEG Extended, Hierarchical (Process 17 & 19) (Retired)', false, true),
  encapsulated(TS.JPEGSpectralSelectionHierarchical2022, 'JPEG Spectral Selection, Hierarchical (Process 20 & 22) (Retired)', false, true),
  encapsulated(TS.JPEGSpectralSelectionHierarchical2123, 'JPEG Spectral Selection, Hierarchical (Process 21 & 23) (Retired)', false, true),
  encapsulated(TS.JPEGFullProgressionHierarchical2426, 'JPEG Full Progression, Hierarchical (Process 24 & 26) (Retired)', false, true),
  encapsulated(TS.JPEGFullProgressionHierarchical2527, 'JPEG Full Progression, Hierarchical (Process 25 & 27) (Retired)', false, true),
  encapsulated(TS.JPEGLosslessHierarchical28, 'JPEG Lossless, Hierarchical (Process 28) (Retired)', true, true),
  encapsulated(TS.JPEGLosslessHierarchical29, 'JPEG Lossless, Hierarchical (Process 29) (Retired)', true, true),
  /** Default Transfer Syntax for Lossless JPEG Image Compression. @see PS3.5 §10.2 */
  encapsulated(TS.JPEGLossless, 'JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1])', true),

  // ---- JPEG-LS (ISO/IEC 14495-1): PS3.5 §8.2.3, Annex A.4 -------------------------------------
  encapsulated(TS.JPEGLSLossless, 'JPEG-LS Lossless Image Compression', true),
  /** Near-lossless coding is lossy. */
  encapsulated(TS.JPEGLSNearLossless, 'JPEG-LS Lossy (Near-Lossless) Image Compression', false),

  // ---- JPEG 2000 (ISO/IEC 15444-1/-2): PS3.5 §8.2.4, Annex A.4 --------------------------------
  encapsulated(TS.JPEG2000Lossless, 'JPEG 2000 Image Compression (Lossless Only)', true),
  encapsulated(TS.JPEG2000, 'JPEG 2000 Image Compression', 'both'),
  encapsulated(TS.JPEG2000MCLossless, 'JPEG 2000 Part 2 Multi-component Image Compression (Lossless Only)', true),
  encapsulated(TS.JPEG2000MC, 'JPEG 2000 Part 2 Multi-component Image Compression', 'both'),

  // ---- JPIP referenced pixel data: PS3.5 §8.4.1, §10.8, Annex A.6 / A.7 -----------------------
  referenced(TS.JPIPReferenced, 'JPIP Referenced', 'both', false),
  /** The entire Data Set is deflated, as for Deflated Explicit VR Little Endian. @see PS3.5 Annex A.7 */
  referenced(TS.JPIPReferencedDeflate, 'JPIP Referenced Deflate', 'both', true),

  // ---- MPEG-2 video: PS3.5 §8.2, Annex A.4 ---------------------------------------------------------
  encapsulated(TS.MPEG2MPML, 'MPEG2 Main Profile / Main Level', false),
  encapsulated(TS.MPEG2MPMLF, 'Fragmentable MPEG2 Main Profile / Main Level', false),
  encapsulated(TS.MPEG2MPHL, 'MPEG2 Main Profile / High Level', false),
  encapsulated(TS.MPEG2MPHLF, 'Fragmentable MPEG2 Main Profile / High Level', false),

  // ---- MPEG-4 AVC/H.264 video: PS3.5 §8.2, Annex A.4 ----------------------------------------------
  encapsulated(TS.MPEG4HP41, 'MPEG-4 AVC/H.264 High Profile / Level 4.1', false),
  encapsulated(TS.MPEG4HP41F, 'Fragmentable MPEG-4 AVC/H.264 High Profile / Level 4.1', false),
  encapsulated(TS.MPEG4HP41BD, 'MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1', false),
  encapsulated(TS.MPEG4HP41BDF, 'Fragmentable MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1', false),
  encapsulated(TS.MPEG4HP422D, 'MPEG-4 AVC/H.264 High Profile / Level 4.2 For 2D Video', false),
  encapsulated(TS.MPEG4HP422DF, 'Fragmentable MPEG-4 AVC/H.264 High Profile / Level 4.2 For 2D Video', false),
  encapsulated(TS.MPEG4HP423D, 'MPEG-4 AVC/H.264 High Profile / Level 4.2 For 3D Video', false),
  encapsulated(TS.MPEG4HP423DF, 'Fragmentable MPEG-4 AVC/H.264 High Profile / Level 4.2 For 3D Video', false),
  encapsulated(TS.MPEG4HP42STEREO, 'MPEG-4 AVC/H.264 Stereo High Profile / Level 4.2', false),
  encapsulated(TS.MPEG4HP42STEREOF, 'Fragmentable MPEG-4 AVC/H.264 Stereo High Profile / Level 4.2', false),

  // ---- HEVC/H.265 video: PS3.5 §8.2, Annex A.4 ----------------------------------------------------
  encapsulated(TS.HEVCMP51, 'HEVC/H.265 Main Profile / Level 5.1', false),
  encapsulated(TS.HEVCM10P51, 'HEVC/H.265 Main 10 Profile / Level 5.1', false),

  // ---- JPEG XL (ISO/IEC 18181-1): PS3.5 §8.2, Annex A.4 -------------------------------------------
  encapsulated(TS.JPEGXLLossless, 'JPEG XL Lossless', true),
  /**
   * Lossless transcoding of a JPEG (lossy) bit stream. The pixels are still those of the lossy
   * JPEG original, so this counts as lossy here.
   */
  encapsulated(TS.JPEGXLJPEGRecompression, 'JPEG XL JPEG Recompression', false),
  encapsulated(TS.JPEGXL, 'JPEG XL', 'both'),

  // ---- High-Throughput JPEG 2000 (ISO/IEC 15444-15): PS3.5 §8.2, Annex A.4 ---------------------
  encapsulated(TS.HTJ2KLossless, 'High-Throughput JPEG 2000 Image Compression (Lossless Only)', true),
  encapsulated(TS.HTJ2KLosslessRPCL, 'High-Throughput JPEG 2000 with RPCL Options Image Compression (Lossless Only)', true),
  encapsulated(TS.HTJ2K, 'High-Throughput JPEG 2000 Image Compression', 'both'),
  referenced(TS.JPIPHTJ2KReferenced, 'JPIP HTJ2K Referenced', 'both', false),
  /** The entire Data Set is deflated. @see PS3.5 Annex A.12 */
  referenced(TS.JPIPHTJ2KReferencedDeflate, 'JPIP HTJ2K Referenced Deflate', 'both', true),

  // ---- RLE: PS3.5 §8.2.2, Annex A.4, Annex G -------------------------------------------------------
  encapsulated(TS.RLELossless, 'RLE Lossless', true),

  // ---- SMPTE ST 2110 (DICOM-RTV metadata flows): PS3.5 Annex A.8 ff., PS3.22 -------------------
  referenced(TS.SMPTEST211020UncompressedProgressiveActiveVideo, 'SMPTE ST 2110-20 Uncompressed Progressive Active Video', true, false),
  referenced(TS.SMPTEST211020UncompressedInterlacedActiveVideo, 'SMPTE ST 2110-20 Uncompressed Interlaced Active Video', true, false),
  referenced(TS.SMPTEST211030PCMDigitalAudio, 'SMPTE ST 2110-30 PCM Digital Audio', true, false),

  // ---- Deflated Image Frame Compression: PS3.5 §8.2.16, Annex A.4.13 -----------------------------
  /** Each frame deflated separately, in one Fragment each. The Data Set itself is not deflated. */
  encapsulated(TS.DeflatedImageFrameCompression, 'Deflated Image Frame Compression', true),

  // ---- Retired Papyrus 3 (PS3.6 Table A-1) --------------------------------------------------------
  { uid: TS.Papyrus3ImplicitVRLittleEndian, name: 'Papyrus 3 Implicit VR Little Endian (Retired)', retired: true, explicitVr: false, littleEndian: true, deflated: false, encapsulated: false, lossless: true },
];

const BY_UID: ReadonlyMap<string, TransferSyntaxInfo> = new Map(TRANSFER_SYNTAXES.map((t) => [t.uid, t]));

/**
 * Look up a Transfer Syntax by its UID.
 *
 * @param uid - Transfer Syntax UID, compared exactly (no trimming or padding removal)
 * @returns the entry, or `undefined` for unknown (e.g. private) Transfer Syntaxes
 * @see PS3.5 §10, PS3.6 Table A-1
 */
export function transferSyntax(uid: string): TransferSyntaxInfo | undefined {
  return BY_UID.get(uid);
}

/**
 * The {@link Encoding} of a known Transfer Syntax, or `undefined` if `uid` is unknown.
 *
 * @param uid - Transfer Syntax UID, compared exactly
 * @see PS3.5 §10 and Annex A
 */
export function transferSyntaxEncoding(uid: string): Encoding | undefined {
  const ts = BY_UID.get(uid);
  if (ts === undefined) return undefined;
  return { explicitVr: ts.explicitVr, littleEndian: ts.littleEndian, deflated: ts.deflated, encapsulated: ts.encapsulated };
}
