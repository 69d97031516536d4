// dcmjs ships no type declarations; the gateway reads only its data dictionary (see vr-dictionary.ts).
declare module 'dcmjs' {
  const dcmjs: unknown;
  export default dcmjs;
}
