// Types of source-digest.js (the tests import it; the build runs it as a script).
export declare function sourceDigest(root?: string): string;
export declare function distIsCurrent(root?: string): boolean;
