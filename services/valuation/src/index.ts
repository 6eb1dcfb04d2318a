export { valuationModule } from './main.js';
