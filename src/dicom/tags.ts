/**
 * Tags the gateway reads or writes, as (group << 16 | element) numbers.
 * @see PS3.6 Table 6-1 (data elements), Table 7-1 (File Meta), Table E.1-1 (command elements)
 */
export const Tag = {
  // Command set, PS3.7 Annex E
  CommandGroupLength: 0x00000000,
  AffectedSopClassUid: 0x00000002,
  RequestedSopClassUid: 0x00000003,
  CommandField: 0x00000100,
  MessageId: 0x00000110,
  MessageIdBeingRespondedTo: 0x00000120,
  MoveDestination: 0x00000600,
  Priority: 0x00000700,
  CommandDataSetType: 0x00000800,
  Status: 0x00000900,
  OffendingElement: 0x00000901,
  ErrorComment: 0x00000902,
  ErrorId: 0x00000903,
  AffectedSopInstanceUid: 0x00001000,
  RequestedSopInstanceUid: 0x00001001,
  EventTypeId: 0x00001002,
  ActionTypeId: 0x00001008,
  MoveOriginatorAeTitle: 0x00001030,
  MoveOriginatorMessageId: 0x00001031,
  // File Meta Information, PS3.10 §7.1
  FileMetaInformationGroupLength: 0x00020000,
  FileMetaInformationVersion: 0x00020001,
  MediaStorageSopClassUid: 0x00020002,
  MediaStorageSopInstanceUid: 0x00020003,
  TransferSyntaxUid: 0x00020010,
  ImplementationClassUid: 0x00020012,
  ImplementationVersionName: 0x00020013,
  SourceApplicationEntityTitle: 0x00020016,
  // Dataset identity
  SpecificCharacterSet: 0x00080005,
  SopClassUid: 0x00080016,
  SopInstanceUid: 0x00080018,
  AccessionNumber: 0x00080050,
  PatientId: 0x00100020,
  Modality: 0x00080060,
  // Storage Commitment module, PS3.3 §C.14.1
  ReferencedSopClassUid: 0x00081150,
  ReferencedSopInstanceUid: 0x00081155,
  TransactionUid: 0x00081195,
  FailureReason: 0x00081197,
  FailedSopSequence: 0x00081198,
  ReferencedSopSequence: 0x00081199,
  StudyInstanceUid: 0x0020000d,
  SeriesInstanceUid: 0x0020000e,
  // Image Pixel module, PS3.3 §C.7.6.3
  SamplesPerPixel: 0x00280002,
  PhotometricInterpretation: 0x00280004,
  PlanarConfiguration: 0x00280006,
  NumberOfFrames: 0x00280008,
  Rows: 0x00280010,
  Columns: 0x00280011,
  BitsAllocated: 0x00280100,
  BitsStored: 0x00280101,
  HighBit: 0x00280102,
  PixelRepresentation: 0x00280103,
  FloatPixelData: 0x7fe00008,
  DoubleFloatPixelData: 0x7fe00009,
  PixelData: 0x7fe00010,
  // Sequence delimitation, PS3.5 §7.5
  Item: 0xfffee000,
  ItemDelimitationItem: 0xfffee00d,
  SequenceDelimitationItem: 0xfffee0dd,
} as const;

/** "(GGGG,EEEE)" for logs and error comments. */
export function tagString(tag: number): string {
  const g = (tag >>> 16).toString(16).toUpperCase().padStart(4, '0');
  const e = (tag & 0xffff).toString(16).toUpperCase().padStart(4, '0');
  return `(${g},${e})`;
}
