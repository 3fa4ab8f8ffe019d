export { compileSpec, cacheHintOf, type SpecFormat } from './compile.js';
export { pinImages, type ImageResolver, type PinnedImage } from './pin-images.js';
export { startSpecCompiler, DEFAULT_ENQUEUE, type SpecCompilerOptions } from './spec-compiler.js';
export { SpecCompilerModule } from './spec-compiler.module.js';
