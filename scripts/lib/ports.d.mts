export function ephemeralLow(): number;
export function freePort(host?: string, options?: { not?: number[] }): Promise<number>;
export function portFree(port: number, host?: string): Promise<boolean>;
export function isAddressInUse(err: unknown): boolean;
