/**
 * Storage SOP Classes the gateway recognises.
 *
 * Contents:
 * - every Standard SOP Class of the Storage Service Class (PS3.4 Table B.5-1), including the
 *   For Processing CT classes (Supplement 252) and the Waveform Presentation State classes;
 * - the retired storage classes still met in older archives and modalities (Standalone*,
 *   the "- Trial" classes, the pre-1996 Ultrasound/Nuclear Medicine UIDs, X-Ray Angiographic
 *   Bi-Plane, the print-related Hardcopy/Stored Print storage classes);
 * - the Non-Patient Object Storage classes (PS3.4 Annex GG, e.g. Hanging Protocol, Color
 *   Palette, Implant Templates, Defined Procedure Protocols, Protocol Approval, Inventory).
 *   These are also transferred with C-STORE, but they are listed in Table GG.3-1, not B.5-1.
 *
 * Left out on purpose:
 * - DICOS (1.2.840.10008.5.1.4.1.1.501.x) and DICONDE (1.2.840.10008.5.1.4.1.1.601.x) classes.
 *   PS3.6 registers their UIDs, but their IODs are defined outside DICOM (NEMA DICOS, ASTM),
 *   and PS3.4 Table B.5-1 does not list them;
 * - Media Storage Directory Storage (DICOMDIR, 1.2.840.10008.1.3.10), which is media-only;
 * - the two retired UIDs with no name (1.2.840.10008.5.1.4.1.1.12.77 and
 *   1.2.840.10008.5.1.4.1.1.40).
 *
 * Names follow the PS3.6 Table A-1 "UID Name" column. Retired entries keep the PS3.6 "(Retired)"
 * suffix so that no two entries have the same name.
 *
 * @see PS3.4 Annex B.5 (Table B.5-1, Standard SOP Classes)
 * @see PS3.4 Annex GG.3 (Table GG.3-1, Non-Patient Object Storage SOP Classes)
 * @see PS3.6 Annex A (Table A-1, UID Values)
 */

/** One Storage SOP Class: its UID, PS3.6 name and whether the standard has retired it. */
export interface SopClassInfo {
  /** SOP Class UID, @see PS3.6 Table A-1 */
  readonly uid: string;
  /** SOP Class name as registered in PS3.6 Table A-1 */
  readonly name: string;
  /** True when PS3.6 lists the UID as retired */
  readonly retired: boolean;
}

/**
 * All Storage SOP Classes recognised by the gateway, in UID order within each group.
 *
 * @see PS3.4 Table B.5-1, PS3.4 Table GG.3-1, PS3.6 Table A-1
 */
export const STORAGE_SOP_CLASSES: readonly SopClassInfo[] = [
  // ---- Retired print-related storage (formerly PS3.4 Annex B / H) -----------------------------
  { uid: '1.2.840.10008.5.1.1.27', name: 'Stored Print Storage SOP Class (Retired)', retired: true },
  { uid: '1.2.840.10008.5.1.1.29', name: 'Hardcopy Grayscale Image Storage SOP Class (Retired)', retired: true },
  { uid: '1.2.840.10008.5.1.1.30', name: 'Hardcopy Color Image Storage SOP Class (Retired)', retired: true },

  // ---- Projection radiography -------------------------------------------------------------------
  { uid: '1.2.840.10008.5.1.4.1.1.1', name: 'Computed Radiography Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.1.1', name: 'Digital X-Ray Image Storage - For Presentation', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.1.1.1', name: 'Digital X-Ray Image Storage - For Processing', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.1.2', name: 'Digital Mammography X-Ray Image Storage - For Presentation', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.1.2.1', name: 'Digital Mammography X-Ray Image Storage - For Processing', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.1.3', name: 'Digital Intra-Oral X-Ray Image Storage - For Presentation', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.1.3.1', name: 'Digital Intra-Oral X-Ray Image Storage - For Processing', retired: false },

  // ---- CT (2.3-2.5: Supplement 252, For Processing CT SOP Classes) ----------------------------
  { uid: '1.2.840.10008.5.1.4.1.1.2', name: 'CT Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.2.1', name: 'Enhanced CT Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.2.2', name: 'Legacy Converted Enhanced CT Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.2.3', name: 'CT Image Storage - For Processing', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.2.4', name: 'Enhanced CT Image Storage - For Processing', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.2.5', name: 'Legacy Converted Enhanced CT Image Storage - For Processing', retired: false },

  // ---- Ultrasound, MR, Nuclear Medicine (incl. the retired pre-1996 UIDs) ---------------------
  { uid: '1.2.840.10008.5.1.4.1.1.3', name: 'Ultrasound Multi-frame Image Storage (Retired)', retired: true },
  { uid: '1.2.840.10008.5.1.4.1.1.3.1', name: 'Ultrasound Multi-frame Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.4', name: 'MR Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.4.1', name: 'Enhanced MR Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.4.2', name: 'MR Spectroscopy Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.4.3', name: 'Enhanced MR Color Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.4.4', name: 'Legacy Converted Enhanced MR Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.5', name: 'Nuclear Medicine Image Storage (Retired)', retired: true },
  { uid: '1.2.840.10008.5.1.4.1.1.6', name: 'Ultrasound Image Storage (Retired)', retired: true },
  { uid: '1.2.840.10008.5.1.4.1.1.6.1', name: 'Ultrasound Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.6.2', name: 'Enhanced US Volume Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.6.3', name: 'Photoacoustic Image Storage', retired: false },

  // ---- Secondary Capture ----------------------------------------------------------------------
  { uid: '1.2.840.10008.5.1.4.1.1.7', name: 'Secondary Capture Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.7.1', name: 'Multi-frame Single Bit Secondary Capture Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.7.2', name: 'Multi-frame Grayscale Byte Secondary Capture Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.7.3', name: 'Multi-frame Grayscale Word Secondary Capture Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.7.4', name: 'Multi-frame True Color Secondary Capture Image Storage', retired: false },

  // ---- Standalone (retired) and Waveform classes (1.2.840.10008.5.1.4.1.1.9.x) ------------------
  { uid: '1.2.840.10008.5.1.4.1.1.8', name: 'Standalone Overlay Storage (Retired)', retired: true },
  { uid: '1.2.840.10008.5.1.4.1.1.9', name: 'Standalone Curve Storage (Retired)', retired: true },
  { uid: '1.2.840.10008.5.1.4.1.1.9.1', name: 'Waveform Storage - Trial (Retired)', retired: true },
  { uid: '1.2.840.10008.5.1.4.1.1.9.1.1', name: '12-lead ECG Waveform Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.9.1.2', name: 'General ECG Waveform Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.9.1.3', name: 'Ambulatory ECG Waveform Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.9.1.4', name: 'General 32-bit ECG Waveform Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.9.2.1', name: 'Hemodynamic Waveform Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.9.3.1', name: 'Cardiac Electrophysiology Waveform Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.9.4.1', name: 'Basic Voice Audio Waveform Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.9.4.2', name: 'General Audio Waveform Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.9.5.1', name: 'Arterial Pulse Waveform Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.9.6.1', name: 'Respiratory Waveform Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.9.6.2', name: 'Multi-channel Respiratory Waveform Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.9.7.1', name: 'Routine Scalp Electroencephalogram Waveform Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.9.7.2', name: 'Electromyogram Waveform Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.9.7.3', name: 'Electrooculogram Waveform Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.9.7.4', name: 'Sleep Electroencephalogram Waveform Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.9.8.1', name: 'Body Position Waveform Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.9.100.1', name: 'Waveform Presentation State Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.9.100.2', name: 'Waveform Acquisition Presentation State Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.10', name: 'Standalone Modality LUT Storage (Retired)', retired: true },
  { uid: '1.2.840.10008.5.1.4.1.1.11', name: 'Standalone VOI LUT Storage (Retired)', retired: true },

  // ---- Presentation States ----------------------------------------------------------------------
  { uid: '1.2.840.10008.5.1.4.1.1.11.1', name: 'Grayscale Softcopy Presentation State Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.11.2', name: 'Color Softcopy Presentation State Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.11.3', name: 'Pseudo-Color Softcopy Presentation State Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.11.4', name: 'Blending Softcopy Presentation State Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.11.5', name: 'XA/XRF Grayscale Softcopy Presentation State Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.11.6', name: 'Grayscale Planar MPR Volumetric Presentation State Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.11.7', name: 'Compositing Planar MPR Volumetric Presentation State Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.11.8', name: 'Advanced Blending Presentation State Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.11.9', name: 'Volume Rendering Volumetric Presentation State Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.11.10', name: 'Segmented Volume Rendering Volumetric Presentation State Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.11.11', name: 'Multiple Volume Rendering Volumetric Presentation State Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.11.12', name: 'Variable Modality LUT Softcopy Presentation State Storage', retired: false },

  // ---- X-Ray angiography / fluoroscopy / 3D X-Ray / breast ------------------------------------
  { uid: '1.2.840.10008.5.1.4.1.1.12.1', name: 'X-Ray Angiographic Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.12.1.1', name: 'Enhanced XA Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.12.2', name: 'X-Ray Radiofluoroscopic Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.12.2.1', name: 'Enhanced XRF Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.12.3', name: 'X-Ray Angiographic Bi-Plane Image Storage (Retired)', retired: true },
  { uid: '1.2.840.10008.5.1.4.1.1.13.1.1', name: 'X-Ray 3D Angiographic Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.13.1.2', name: 'X-Ray 3D Craniofacial Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.13.1.3', name: 'Breast Tomosynthesis Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.13.1.4', name: 'Breast Projection X-Ray Image Storage - For Presentation', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.13.1.5', name: 'Breast Projection X-Ray Image Storage - For Processing', retired: false },

  // ---- Intravascular OCT, NM, Parametric Map ----------------------------------------------------
  { uid: '1.2.840.10008.5.1.4.1.1.14.1', name: 'Intravascular Optical Coherence Tomography Image Storage - For Presentation', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.14.2', name: 'Intravascular Optical Coherence Tomography Image Storage - For Processing', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.20', name: 'Nuclear Medicine Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.30', name: 'Parametric Map Storage', retired: false },

  // ---- Raw data, registration, segmentation, surface scan --------------------------------------
  { uid: '1.2.840.10008.5.1.4.1.1.66', name: 'Raw Data Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.66.1', name: 'Spatial Registration Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.66.2', name: 'Spatial Fiducials Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.66.3', name: 'Deformable Spatial Registration Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.66.4', name: 'Segmentation Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.66.5', name: 'Surface Segmentation Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.66.6', name: 'Tractography Results Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.66.7', name: 'Label Map Segmentation Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.66.8', name: 'Height Map Segmentation Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.67', name: 'Real World Value Mapping Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.68.1', name: 'Surface Scan Mesh Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.68.2', name: 'Surface Scan Point Cloud Storage', retired: false },

  // ---- Visible Light (endoscopy, microscopy, photography, ophthalmic, WSI, dermoscopy) ---------
  { uid: '1.2.840.10008.5.1.4.1.1.77.1', name: 'VL Image Storage - Trial (Retired)', retired: true },
  { uid: '1.2.840.10008.5.1.4.1.1.77.2', name: 'VL Multi-frame Image Storage - Trial (Retired)', retired: true },
  { uid: '1.2.840.10008.5.1.4.1.1.77.1.1', name: 'VL Endoscopic Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.77.1.1.1', name: 'Video Endoscopic Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.77.1.2', name: 'VL Microscopic Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.77.1.2.1', name: 'Video Microscopic Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.77.1.3', name: 'VL Slide-Coordinates Microscopic Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.77.1.4', name: 'VL Photographic Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.77.1.4.1', name: 'Video Photographic Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.77.1.5.1', name: 'Ophthalmic Photography 8 Bit Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.77.1.5.2', name: 'Ophthalmic Photography 16 Bit Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.77.1.5.3', name: 'Stereometric Relationship Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.77.1.5.4', name: 'Ophthalmic Tomography Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.77.1.5.5', name: 'Wide Field Ophthalmic Photography Stereographic Projection Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.77.1.5.6', name: 'Wide Field Ophthalmic Photography 3D Coordinates Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.77.1.5.7', name: 'Ophthalmic Optical Coherence Tomography En Face Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.77.1.5.8', name: 'Ophthalmic Optical Coherence Tomography B-scan Volume Analysis Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.77.1.6', name: 'VL Whole Slide Microscopy Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.77.1.7', name: 'Dermoscopic Photography Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.77.1.8', name: 'Confocal Microscopy Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.77.1.9', name: 'Confocal Microscopy Tiled Pyramidal Image Storage', retired: false },

  // ---- Ophthalmic measurements and maps ---------------------------------------------------------
  { uid: '1.2.840.10008.5.1.4.1.1.78.1', name: 'Lensometry Measurements Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.78.2', name: 'Autorefraction Measurements Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.78.3', name: 'Keratometry Measurements Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.78.4', name: 'Subjective Refraction Measurements Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.78.5', name: 'Visual Acuity Measurements Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.78.6', name: 'Spectacle Prescription Report Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.78.7', name: 'Ophthalmic Axial Measurements Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.78.8', name: 'Intraocular Lens Calculations Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.79.1', name: 'Macular Grid Thickness and Volume Report Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.80.1', name: 'Ophthalmic Visual Field Static Perimetry Measurements Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.81.1', name: 'Ophthalmic Thickness Map Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.82.1', name: 'Corneal Topography Map Storage', retired: false },

  // ---- Structured Reporting (1.2.840.10008.5.1.4.1.1.88.x) --------------------------------------
  { uid: '1.2.840.10008.5.1.4.1.1.88.1', name: 'Text SR Storage - Trial (Retired)', retired: true },
  { uid: '1.2.840.10008.5.1.4.1.1.88.2', name: 'Audio SR Storage - Trial (Retired)', retired: true },
  { uid: '1.2.840.10008.5.1.4.1.1.88.3', name: 'Detail SR Storage - Trial (Retired)', retired: true },
  { uid: '1.2.840.10008.5.1.4.1.1.88.4', name: 'Comprehensive SR Storage - Trial (Retired)', retired: true },
  { uid: '1.2.840.10008.5.1.4.1.1.88.11', name: 'Basic Text SR Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.88.22', name: 'Enhanced SR Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.88.33', name: 'Comprehensive SR Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.88.34', name: 'Comprehensive 3D SR Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.88.35', name: 'Extensible SR Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.88.40', name: 'Procedure Log Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.88.50', name: 'Mammography CAD SR Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.88.59', name: 'Key Object Selection Document Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.88.65', name: 'Chest CAD SR Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.88.67', name: 'X-Ray Radiation Dose SR Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.88.68', name: 'Radiopharmaceutical Radiation Dose SR Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.88.69', name: 'Colon CAD SR Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.88.70', name: 'Implantation Plan SR Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.88.71', name: 'Acquisition Context SR Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.88.72', name: 'Simplified Adult Echo SR Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.88.73', name: 'Patient Radiation Dose SR Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.88.74', name: 'Planned Imaging Agent Administration SR Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.88.75', name: 'Performed Imaging Agent Administration SR Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.88.76', name: 'Enhanced X-Ray Radiation Dose SR Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.88.77', name: 'Waveform Annotation SR Storage', retired: false },

  // ---- Content assessment, microscopy annotations ---------------------------------------------
  { uid: '1.2.840.10008.5.1.4.1.1.90.1', name: 'Content Assessment Results Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.91.1', name: 'Microscopy Bulk Simple Annotations Storage', retired: false },

  // ---- Encapsulated documents (1.2.840.10008.5.1.4.1.1.104.x) -----------------------------------
  { uid: '1.2.840.10008.5.1.4.1.1.104.1', name: 'Encapsulated PDF Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.104.2', name: 'Encapsulated CDA Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.104.3', name: 'Encapsulated STL Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.104.4', name: 'Encapsulated OBJ Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.104.5', name: 'Encapsulated MTL Storage', retired: false },

  // ---- PET, structured display ------------------------------------------------------------------
  { uid: '1.2.840.10008.5.1.4.1.1.128', name: 'Positron Emission Tomography Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.128.1', name: 'Legacy Converted Enhanced PET Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.129', name: 'Standalone PET Curve Storage (Retired)', retired: true },
  { uid: '1.2.840.10008.5.1.4.1.1.130', name: 'Enhanced PET Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.131', name: 'Basic Structured Display Storage', retired: false },

  // ---- Performed Procedure Protocols (patient-related, Table B.5-1) ---------------------------
  { uid: '1.2.840.10008.5.1.4.1.1.200.2', name: 'CT Performed Procedure Protocol Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.200.8', name: 'XA Performed Procedure Protocol Storage', retired: false },

  // ---- Radiotherapy, first and second generation (1.2.840.10008.5.1.4.1.1.481.x) ---------------
  { uid: '1.2.840.10008.5.1.4.1.1.481.1', name: 'RT Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.481.2', name: 'RT Dose Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.481.3', name: 'RT Structure Set Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.481.4', name: 'RT Beams Treatment Record Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.481.5', name: 'RT Plan Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.481.6', name: 'RT Brachy Treatment Record Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.481.7', name: 'RT Treatment Summary Record Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.481.8', name: 'RT Ion Plan Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.481.9', name: 'RT Ion Beams Treatment Record Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.481.10', name: 'RT Physician Intent Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.481.11', name: 'RT Segment Annotation Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.481.12', name: 'RT Radiation Set Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.481.13', name: 'C-Arm Photon-Electron Radiation Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.481.14', name: 'Tomotherapeutic Radiation Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.481.15', name: 'Robotic-Arm Radiation Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.481.16', name: 'RT Radiation Record Set Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.481.17', name: 'RT Radiation Salvage Record Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.481.18', name: 'Tomotherapeutic Radiation Record Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.481.19', name: 'C-Arm Photon-Electron Radiation Record Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.481.20', name: 'Robotic Radiation Record Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.481.21', name: 'RT Radiation Set Delivery Instruction Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.481.22', name: 'RT Treatment Preparation Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.481.23', name: 'Enhanced RT Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.481.24', name: 'Enhanced Continuous RT Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.481.25', name: 'RT Patient Position Acquisition Instruction Storage', retired: false },

  // ---- RT delivery instructions (1.2.840.10008.5.1.4.34.x, Table B.5-1) -------------------------
  { uid: '1.2.840.10008.5.1.4.34.1', name: 'RT Beams Delivery Instruction Storage - Trial (Retired)', retired: true },
  { uid: '1.2.840.10008.5.1.4.34.7', name: 'RT Beams Delivery Instruction Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.34.10', name: 'RT Brachy Application Setup Delivery Instruction Storage', retired: false },

  // ---- Non-Patient Object Storage (PS3.4 Annex GG, Table GG.3-1) --------------------------------
  { uid: '1.2.840.10008.5.1.4.1.1.200.1', name: 'CT Defined Procedure Protocol Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.200.3', name: 'Protocol Approval Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.200.7', name: 'XA Defined Procedure Protocol Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.201.1', name: 'Inventory Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.38.1', name: 'Hanging Protocol Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.39.1', name: 'Color Palette Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.43.1', name: 'Generic Implant Template Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.44.1', name: 'Implant Assembly Template Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.45.1', name: 'Implant Template Group Storage', retired: false },
];

const BY_UID: ReadonlyMap<string, SopClassInfo> = new Map(STORAGE_SOP_CLASSES.map((c) => [c.uid, c]));

/**
 * Look up a Storage SOP Class by its UID.
 *
 * @param uid - SOP Class UID, compared exactly (no trimming or padding removal)
 * @returns the entry, or `undefined` when the UID is not a known Storage SOP Class
 * @see PS3.4 Table B.5-1, PS3.6 Table A-1
 */
export function storageSopClass(uid: string): SopClassInfo | undefined {
  return BY_UID.get(uid);
}

/**
 * True when `uid` is one of {@link STORAGE_SOP_CLASSES}, retired ones included.
 *
 * @param uid - SOP Class UID, compared exactly
 * @see PS3.4 Table B.5-1, PS3.6 Table A-1
 */
/**
 * The PS3.6 keyword of a storage SOP Class (its name without spaces and punctuation, as the
 * standard forms keywords: "CT Image Storage" → CTImageStorage).
 */
export function sopClassKeyword(info: SopClassInfo): string {
  const name = info.name.replace(/\s*\(Retired\)$/, '').replace(/^12-lead/, 'TwelveLead');
  return name.replace(/[^A-Za-z0-9]/g, '') + (info.retired ? 'Retired' : '');
}

const BY_KEYWORD = new Map(STORAGE_SOP_CLASSES.map((c) => [sopClassKeyword(c), c.uid] as const));

/** A SOP Class given as a UID or a PS3.6 keyword (`CTImageStorage`): its UID, or undefined. */
export function resolveSopClass(s: string): string | undefined {
  if (/^[0-9]+(\.[0-9]+)+$/.test(s)) return s;
  return BY_KEYWORD.get(s);
}

export function isKnownStorageSopClass(uid: string): boolean {
  return BY_UID.has(uid);
}

/**
 * Verification SOP Class UID (C-ECHO).
 *
 * @see PS3.4 Annex A
 * @see PS3.6 Table A-1
 */
export const VERIFICATION_SOP_CLASS = '1.2.840.10008.1.1';
